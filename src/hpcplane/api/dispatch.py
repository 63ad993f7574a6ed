"""ACTIONS: each implemented action with its reader, permission and handler, one table per version."""

from __future__ import annotations

from hpcplane import API_VERSION
from hpcplane.api.action import Action
from hpcplane.api.actions import (
    autoscale,
    catalog,
    clusters,
    clusters_admin,
    jobs,
    operations,
    queues,
    sts,
    tasks,
    templates,
    users,
)


def _table(*actions: Action) -> dict[str, Action]:
    return {action.name: action for action in actions}


ACTIONS: dict[str, Action] = _table(
    tasks.LIST_TASKS,
    clusters.LIST_CLUSTERS,
    clusters.DESCRIBE_CLUSTER,
    clusters.LIST_NODES,
    *operations.OPERATIONS,
    clusters_admin.MODIFY_CLUSTER_ATTRIBUTES,
    clusters_admin.RECOVER_CLUSTER,
    clusters_admin.LIST_CLUSTER_LOGS,
    templates.CREATE_JOB_TEMPLATE,
    templates.EDIT_JOB_TEMPLATE,
    templates.DELETE_JOB_TEMPLATES,
    templates.LIST_JOB_TEMPLATES,
    users.ADD_USERS,
    users.DELETE_USERS,
    users.MODIFY_USER_GROUPS,
    users.MODIFY_USER_PASSWORDS,
    users.LIST_USERS,
    queues.LIST_QUEUES,
    queues.ADD_QUEUE,
    queues.UPDATE_QUEUE_CONFIG,
    queues.DELETE_QUEUE,
    queues.LIST_NODES_BY_QUEUE,
    jobs.CREATE_JOB_FILE,
    jobs.SUBMIT_JOB,
    jobs.LIST_JOBS,
    jobs.LIST_JOBS_WITH_FILTERS,
    jobs.DESCRIBE_JOB,
    jobs.GET_JOB_LOG,
    jobs.STOP_JOBS,
    jobs.DELETE_JOBS,
    jobs.RERUN_JOBS,
    autoscale.SET_AUTO_SCALE_CONFIG,
    autoscale.GET_AUTO_SCALE_CONFIG,
    autoscale.DESCRIBE_AUTO_SCALE_CONFIG,
    catalog.LIST_REGIONS,
    catalog.LIST_IMAGES,
    catalog.LIST_PREFERRED_ECS_TYPES,
    catalog.LIST_CURRENT_CLIENT_VERSION,
    catalog.LIST_SOFTWARES,
    catalog.LIST_INSTALLED_SOFTWARE,
    catalog.INSTALL_SOFTWARE,
    catalog.UNINSTALL_SOFTWARE,
)
STS_ACTIONS: dict[str, Action] = _table(sts.ASSUME_ROLE)

VERSIONS: dict[str, dict[str, Action]] = {API_VERSION: ACTIONS, sts.STS_VERSION: STS_ACTIONS}
