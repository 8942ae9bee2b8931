"""What vboplan manages, kind by kind: the settings catalog, the collections, and the registry that orders them
(:mod:`.registry`), where each kind is one entry. Kept free of imports so that the emulator and the API layer can
read a spec without loading every kind."""
