# data stage (rules are added by this stage's issue).
