"""Bank account statements as banks exchange them: one model, written and read as MT940,
camt.053.001.08 and CSV.

The partner bank's sandbox writes its statements with these writers, the accounts service writes
the statements it gives bank partners with them, and reads the banks' statements into the same model.
"""

from shared.bank_statements.model import Balance, MalformedFile, Statement, StatementEntry

__all__ = ["Balance", "MalformedFile", "Statement", "StatementEntry"]
