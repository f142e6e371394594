package oracle

import (
	"math/big"

	"github.com/shopspring/decimal"
)

// divHalfEven is d / n rounded half-even to places decimal places (n > 0),
// computed on the integer coefficient so that no division precision is
// involved: d = c × 10^e, so d / n at scale p is c × 10^(e+p) / n units of
// 10^-p.
func divHalfEven(d decimal.Decimal, n int64, places int32) decimal.Decimal {
	num := new(big.Int).Set(d.Coefficient())
	den := big.NewInt(n)
	ten := big.NewInt(10)
	if k := d.Exponent() + places; k >= 0 {
		num.Mul(num, new(big.Int).Exp(ten, big.NewInt(int64(k)), nil))
	} else {
		den.Mul(den, new(big.Int).Exp(ten, big.NewInt(int64(-k)), nil))
	}
	q, r := new(big.Int).QuoRem(num, den, new(big.Int)) // q truncated toward zero
	twice := new(big.Int).Abs(r)
	twice.Lsh(twice, 1)
	away := false
	switch twice.Cmp(den) {
	case 1:
		away = true
	case 0:
		away = q.Bit(0) == 1 // odd: the even neighbour is away from zero
	}
	if away {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	return decimal.NewFromBigInt(q, -places)
}

// roundHalfEven rounds d to places decimal places, ties to even.
func roundHalfEven(d decimal.Decimal, places int32) decimal.Decimal {
	return divHalfEven(d, 1, places)
}

// fixed is d rounded half-even to places and written with exactly places
// decimals, the wire form of the contract's output decimals.
func fixed(d decimal.Decimal, places int32) string {
	return roundHalfEven(d, places).StringFixed(places)
}

func floorTo(t, n int64) int64 {
	r := t % n
	if r < 0 {
		r += n
	}
	return t - r
}
