"""The teacher's side: assignments with points (from the solution notebooks), the student release,
grading a class's submissions in a sandbox, and the gradebook, feedback pages and class report."""
