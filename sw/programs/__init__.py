"""Host programs: scenarios written against the Bus, runnable on either backend."""
