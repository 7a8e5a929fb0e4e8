"""The customer store: customers, contact points, interactions, tickets, users and audit."""
