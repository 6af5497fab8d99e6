"""The study-file schema (``study.schema.json``, written by ``risk schema``) and `hostile_corpus`, the
hostile inputs that the validator and the data readers are checked against."""
