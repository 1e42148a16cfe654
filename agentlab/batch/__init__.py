"""Headless batch runs from workflow files (`agentlab batch`), with leases for several orchestrators."""

from agentlab.batch.workflow import Workflow, WorkflowError, load_workflow, load_workflows

__all__ = ["Workflow", "WorkflowError", "load_workflow", "load_workflows"]
