from django import template

from accounts.selectors import agent_history as agent_history_select
from estateflow.admin_dashboard import admin_dashboard as admin_dashboard_select

register = template.Library()


@register.simple_tag(takes_context=True)
def admin_dashboard(context):
    """{% admin_dashboard as dash %}: the panels the current user may see."""
    request = context.get("request")
    if request is None or not request.user.is_active or not request.user.is_staff:
        return {}
    return admin_dashboard_select(user=request.user)


@register.simple_tag(takes_context=True)
def agent_history(context, agent):
    """{% agent_history original as history %}: admin edits, import journal and sync for one agent."""
    request = context.get("request")
    if agent is None or request is None or not request.user.has_perm("accounts.view_auditevent"):
        return None
    return agent_history_select(agent=agent)


@register.filter
def duration(seconds):
    """1234.5 -> '20 min', 90000 -> '1 d 1 h'."""
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


@register.filter
def thousands(value):
    """12345 -> '12,345' (no django.contrib.humanize needed)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
