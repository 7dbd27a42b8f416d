from bayesglmm.cli import main

raise SystemExit(main())
