"""Report writing and reviewing: LaTeX papers whose numbers and citations are traced to the run's data.

`write_report` and `review_report` are called by the write_report and review phases;
`agentlab.report.review_view` holds the review display of `agentlab review RUN`. See docs/report.md.
"""

from agentlab.report.reviewer import review_report
from agentlab.report.writer import ReportFailed, write_report

__all__ = ["ReportFailed", "write_report", "review_report"]
