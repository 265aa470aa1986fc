"""Documents in, answers and talk tracks out."""
