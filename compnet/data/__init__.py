"""Data shipped with compnet: scikit-learn's digits (digits.csv.gz, BSD-3; DIGITS_LICENSE.txt says where it comes
from). Read it with `compnet.datasets.load_digits`."""
