"""The token of a mail setting: four visible states and one pure transition function."""
