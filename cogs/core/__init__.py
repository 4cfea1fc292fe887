"""What every feature shares on Discord: the client, the one error path, permission checks,
command translations and common rendering."""
