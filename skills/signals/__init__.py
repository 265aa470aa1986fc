"""Signals: reps' notes become tags, events come in over the API, journey breakpoints and health.

Modules, each with one job: ``tags`` (the one way to change a customer's tags, plus the hooks run
after such a change commits), ``extract`` (rule-based reading of a note), ``notes`` (record and
correct a note), ``events`` (tag and journey events in), ``journey`` (breakpoint rules and their
evaluation), ``heatmap`` (counts and the PNG), ``health`` (opportunity health and the daily digest).
"""
