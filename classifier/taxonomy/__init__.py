"""Taxonomies as text: the YAML import, the labels embedded into a FAISS index, the pre-deploy lint."""
