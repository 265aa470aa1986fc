"""Tables, engine/session factory and org import. Imports none of the other packages."""
