"""Formula + DataFrame -> the frozen :class:`~bayesglmm.design.types.Design` every engine reads
(:mod:`.build`), and checks on it (:mod:`.separation`)."""
