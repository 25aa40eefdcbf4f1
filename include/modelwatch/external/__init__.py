"""Models ModelWatch did not train: registration from a reference frame (:mod:`.register`, :mod:`.schema`) and
their prediction feed through the drop folder (:mod:`.feed`)."""
