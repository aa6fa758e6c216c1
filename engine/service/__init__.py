"""The HTTP service (`callflow serve`): settings, runs, endpoints, callbacks, console, store, provider."""
