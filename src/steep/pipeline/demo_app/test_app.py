import unittest

import app


class PriceTests(unittest.TestCase):
    def test_tax_is_added(self) -> None:
        self.assertEqual(app.price_with_tax(1000), 1200)

    def test_a_price_is_whole_cents(self) -> None:
        self.assertEqual(app.price_with_tax(999), 1199)


if __name__ == "__main__":
    unittest.main()
