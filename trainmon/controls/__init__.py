"""Controls: the terminal's keys and signals in (:mod:`.terminal`), and what each key
does to the view options (:mod:`.reducer`)."""
