"""The files lanco keeps: task records (record), namespace configurations (config), task logs (logfile) and
their rotation (logrotation), and the JSON reader they share (jsonread)."""
