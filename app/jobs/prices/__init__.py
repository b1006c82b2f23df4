"""What each (operation, provider) costs in gateway credits, by the unit.

- :mod:`.rules`: units, rules, rounding, quotes;
- :mod:`.defaults`: the rules the providers' documents give, and when each upstream bills;
- :mod:`.measure`: what a request and its finished work measure;
- :mod:`.book`: the rule in force for each binding (defaults, config, admin overrides).
"""

from app.jobs.prices.book import Price, PriceBook, parse_rule
from app.jobs.prices.rules import PriceRule, PriceUnit, Quote, flat_quote

__all__ = ["Price", "PriceBook", "PriceRule", "PriceUnit", "Quote", "flat_quote", "parse_rule"]
