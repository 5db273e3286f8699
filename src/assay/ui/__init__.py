"""The web interface for people (issue 15): server-rendered pages (Jinja2, autoescaped, no
script) for the home page and search, projects, releases and files with their provenance, and
sign-in. See docs/web.md."""
