"""A local Salesforce stand-in: an in-memory org that validates and answers like Salesforce."""
