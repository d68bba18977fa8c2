"""Ready-made task functions for the steps every ML pipeline has, used as python tasks:

```yaml
python_task: {function: "lakestack.jobs.library.<module>:<function>", parameters: {...}}
```

Each acts through `lakestack.jobs.context.workspace()`, as the run's principal, and hands its
results to the next tasks as task values.
"""
