mod hpa;
