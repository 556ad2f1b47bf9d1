"""What each framework publishes: route templates and the Quart hooks.

No framework is imported here until an app of that framework is handed in.
"""
