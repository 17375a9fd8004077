"""The weather-alarm service: configuration, API blueprints, alarm rules, push."""
