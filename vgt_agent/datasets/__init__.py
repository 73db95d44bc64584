"""Dataset adapters: a name -> a loader of Samples."""
