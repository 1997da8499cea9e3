"""The review desk: a web application over the decision record where reviewers work the reports
the model was unsure of (one key per label) and supervisors watch how each model is doing.

Starlette served by uvicorn, server-rendered Jinja2 templates, one small script of our own, every
asset served from here (it must work on a closed network). It reads and writes the decision
record through :mod:`triage.store` and computes figures with :mod:`triage.monitor`.
"""
