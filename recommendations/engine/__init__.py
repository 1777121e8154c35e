"""The local recommendation engine: Personalize's recipes over numpy arrays (no Django)."""
