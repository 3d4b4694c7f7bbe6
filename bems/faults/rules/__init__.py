"""Fault detection rules over what BEMS stores: zones, air handlers, meters.

The method follows NIST APAR and ASHRAE Guideline 36: first the operating mode of each
15-minute interval (open or closed by the zone's schedule, AC on or off, device stale, a
person's override), then only the rules of that mode, each with a persistence time; then the
findings that another finding explains are suppressed (a zone "too warm" while its air handler
cannot cool, or while its own sensor is biased or stuck). Baselines (a zone's usual night offset
from its neighbours, the usual night load) come from the days before, so a rule uses only data
up to the time it reports (`detected`): the benchmark's time to detect is honest.

Every threshold is in the site file's `[faults]` table (`grid.THRESHOLDS`). Pure functions: the
data comes in as a `Data` grid, the findings go out; `bems.faults.engine` loads and stores.
One module per kind of thing judged; each declares the rules it writes (`grid.declare`).
"""

from bems.faults.rules.ahu import ahu_rules
from bems.faults.rules.grid import (RULES, STEP_S, THRESHOLDS, Data, Finding, check_threshold,
                                    on_for, runs, thresholds)
from bems.faults.rules.meters import _usual_by_hour, meter_rules, tree_rule
from bems.faults.rules.neighbours import bias_rule, return_air_rule
from bems.faults.rules.suppress import suppress
from bems.faults.rules.zones import zone_rules

__all__ = ["RULES", "STEP_S", "THRESHOLDS", "Data", "Finding", "ahu_rules", "bias_rule",
           "check_threshold", "meter_rules", "on_for", "return_air_rule", "runs", "suppress",
           "thresholds", "tree_rule", "zone_rules", "_usual_by_hour"]
