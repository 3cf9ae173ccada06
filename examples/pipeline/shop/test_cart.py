import unittest

from cart import total


class TotalTest(unittest.TestCase):
    def test_sums_prices(self) -> None:
        self.assertEqual(total([1.5, 2.5]), 4.0)

    def test_applies_a_discount(self) -> None:
        self.assertEqual(total([10.0], discount=0.1), 9.0)

    def test_refuses_a_discount_of_100_percent(self) -> None:
        with self.assertRaises(ValueError):
            total([10.0], discount=1)


if __name__ == "__main__":
    unittest.main()
