"""The pure planner: desired state + actual state + inventory -> Plan.

`planner.make_plan` is the entry point; `model` holds the plan's types, `diff` the
per-object comparison, `classify` the decisions per guest, `capacity` the ordering by
admission replay, `graph` the plan's dependency graph and `planfile` its encoding.
No I/O, no clock: see DESIGN.md section 4.
"""
