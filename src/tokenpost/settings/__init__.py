"""Mail settings: providers, the one SMTP setting, named POP settings (pure data and rules)."""
