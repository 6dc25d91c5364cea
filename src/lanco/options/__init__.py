"""The run plan: what run and set are given, parsed and checked before anything is made: the limits table
(limits), the rest of a run's options (runopts), sizes and durations (units), and the API's TypedDicts
(optiontypes, for type checkers and readers)."""
