"""The sync hub: PostgreSQL state of every link, plan, intent, run, dead letter and audited write."""
