"""The 20 ms call path: media clock, legs, sessions, seats, switchboard, prompts, recorder."""
