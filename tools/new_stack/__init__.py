"""Write a new stack file from the few facts a homelab needs (``make new-stack STACK=name``)."""
