"""The archive side: walking folders under the roots, extracting text from files, unpacking uploads."""
