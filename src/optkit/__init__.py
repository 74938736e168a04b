"""optkit."""
