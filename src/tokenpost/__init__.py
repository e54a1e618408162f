"""tokenpost: OAuth 2.0 e-mail for devices.

Importing the package does nothing heavy: the CLI imports what a command needs when it runs.
"""

__version__ = "0.1.0"
