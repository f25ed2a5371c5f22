"""Transport edges: the ``imports.v1`` subscriber and the receipt relay loop; they parse and delegate."""
