"""What runs write and read back: metric names, the JSON records, atomic files and locks, TensorBoard, run folders."""
