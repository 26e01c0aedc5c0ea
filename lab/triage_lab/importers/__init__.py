"""Importers: public datasets turned into scenarios."""
