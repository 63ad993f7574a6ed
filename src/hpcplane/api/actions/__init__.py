"""One module per action family; each declares its Action next to its handler."""
