"""Web pages: the agent console, the supervisor wallboard and the chat widget."""
