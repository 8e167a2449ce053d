"""Change detection: what each recent slot of time delivered, so that a later sync exports and
emits only what Amazon changed since (slots.py: the grid; sketch.py: the fixed-size record of a
slot's invoices; delivered.py: the records kept in a stream's state)."""
