"""Reading any set of runs back as tables, statistics, figures and report.md: a sweep's comparison of groups over
seeds, or an Optuna study's trials."""
