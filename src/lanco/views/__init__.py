"""The views: pure formatters of records and figures (render), the top screen's data (top) and its curses
painter (topscreen), and the live figures a view reads (stats)."""
