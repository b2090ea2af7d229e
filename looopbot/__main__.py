from looopbot.cli import entry

entry()
